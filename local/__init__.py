"""The embedded local stack: moto server, Redis, the API and the event pump."""
