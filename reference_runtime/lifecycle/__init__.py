"""The container lifecycle: status, allowed transitions, the state store, one module per verb."""
