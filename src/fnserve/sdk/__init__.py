"""The SDK users write services with: decorators, the code loader, and deploying from Python."""
