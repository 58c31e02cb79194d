"""`vidsynth batch`: a Ray Data job that writes a dataset of videos and an index, resumable.
Needs the `batch` extra (Ray Data)."""
