"""Monitoring: the training data's reference profile, drift and quality reports, the prediction
log and its feedback join, and the live metrics of the service."""
