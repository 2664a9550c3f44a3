"""What the text views share: the width of a GPU's memory bar and the tenants' colours."""

BAR_WIDTH = 16
# Colours cycle over tenants so that neighbours on one bar can be told apart.
PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
