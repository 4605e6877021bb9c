"""Training pipelines for the Fose and KSDiff models (reuses ``engine`` models and data)."""
