"""VLM agents (placeholder)."""
