"""The incident domain: tables, state machine, use cases. Imports only SQLAlchemy and the stdlib."""
