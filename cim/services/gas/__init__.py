"""Gas lifeline analyses: underground spaces next to gas pipes (燃气相邻地下空间), their risk,
sensor sites that cover the riskiest gas-pipe length, and what to do on a gas alarm."""
