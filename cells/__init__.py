"""The built-in cells: one cell file each (``symmft cells`` lists them; a user cell is any file of this form)."""
