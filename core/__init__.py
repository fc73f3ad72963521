"""The bottom of the house: settings, the shared vocabulary and pure domain rules. Imports nothing of ours."""
