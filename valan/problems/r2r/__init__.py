"""Room-to-Room (R2R) instruction following on the Matterport3D navigation graphs."""
