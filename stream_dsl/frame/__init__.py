"""The polars-style dataframe API: builds the same logical plan as the SQL front end."""
