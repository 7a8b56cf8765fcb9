"""The shell: configuration, wiring, the outbound Slack facade, the outbox relay and the CLI."""
