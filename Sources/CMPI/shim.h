// Open MPI's C interface for EProp/MPIProcessGroup.swift (the only file that imports it).
// Open MPI defines its handles as macros that cast the address of a global object, which Swift
// cannot import; these functions hand them over.
#include <mpi.h>

static inline MPI_Comm eprop_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype eprop_mpi_word(void) { return MPI_UINT64_T; }
static inline MPI_Datatype eprop_mpi_long(void) { return MPI_LONG; }
static inline MPI_Op eprop_mpi_max(void) { return MPI_MAX; }
static inline void *eprop_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Datatype eprop_mpi_byte(void) { return MPI_BYTE; }
