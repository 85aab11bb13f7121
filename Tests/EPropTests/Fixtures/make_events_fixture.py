"""Writes events-numpy.npz, the event-list fixture of EventDataTests, with numpy.savez itself
(ZIP64 local headers, stored members), so the Swift reader is tested on numpy's own output.
Run: .venv/bin/python Tests/EPropTests/Fixtures/make_events_fixture.py"""
import os
import numpy as np

# Three samples: (time steps, channels, label); sample 1 has no events, sample 2 repeats an event.
samples = [([1, 1, 3, 4], [0, 4, 2, 0], 1), ([], [], 0), ([2, 2, 5], [3, 3, 1], 2)]
times = np.array([t for s in samples for t in s[0]], dtype=np.uint16)
units = np.array([u for s in samples for u in s[1]], dtype=np.int8)
offsets = np.cumsum([0] + [len(s[0]) for s in samples]).astype(np.int64)
labels = np.array([s[2] for s in samples], dtype=np.int32)
np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "events-numpy.npz"),
         times=times, units=units, offsets=offsets, labels=labels,
         n_in=np.int64(5), n_classes=np.int64(3), sequence=np.int64(6), dt_ms=np.float32(1.0))
