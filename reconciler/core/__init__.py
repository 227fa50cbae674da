"""The pure core: live conditions, diff and plan. No files, no network, no clock."""
