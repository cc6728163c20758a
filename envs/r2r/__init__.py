"""Room-to-Room (Anderson et al. 2018) on Matterport3D navigation graphs."""
