"""The ground floor: infrastructure every other layer uses (registry, config, checkpoints, logs); it imports
nothing else of lavis."""
