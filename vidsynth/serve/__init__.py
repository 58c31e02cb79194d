"""`vidsynth serve`: a Ray Serve deployment behind a FastAPI ingress, with a web page.
Needs the `serve` extra (Ray Serve and FastAPI)."""
