"""Navigation from Dialog History (NDH, the task of CVDN: Thomason et al. 2019) on Matterport3D navigation graphs."""
