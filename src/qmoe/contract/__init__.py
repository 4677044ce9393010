"""The data contract as code: what the stages agree on, torch-free (params `study` first)."""
