"""Navigation from Dialog History (CVDN's NDH task): its config sections and problem."""
