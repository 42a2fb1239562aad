"""Training: losses, penalties, augmentation, the guards and the loop (`ganpipe train`)."""
