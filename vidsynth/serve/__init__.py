"""`vidsynth serve`: a Ray Serve deployment behind a FastAPI ingress, with a web page.

The deployment is the runtime plus a thin ingress: requests are GenerateRequests validated by
the runtime, videos are made by the runtime's stream and writers, and the HTTP layer maps
errors to status codes. Needs the `serve` extra (Ray Serve and FastAPI).
"""
