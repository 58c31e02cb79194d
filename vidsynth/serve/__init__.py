"""Serving: `vidsynth serve` (a Ray Serve deployment behind a FastAPI ingress, with a web page)
and `vidsynth batch` (a Ray Data job writing a dataset of videos).

The deployment is the runtime plus a thin ingress: requests are GenerateRequests validated by
the runtime, videos are made by the runtime's stream and writers, and the HTTP layer maps
errors to status codes. Needs the `serve` extra (`pip install 'vidsynth[serve]'`).
"""
