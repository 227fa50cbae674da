"""The API: wire models shared with the emulator, and the HTTP client."""
