"""The HTTP model service: FastAPI app, model loading, request contract, metrics and logs."""
