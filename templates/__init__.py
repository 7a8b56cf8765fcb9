"""The message templates, installed as the package `handlers.templates` (see pyproject.toml)."""
