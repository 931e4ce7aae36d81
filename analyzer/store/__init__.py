"""The run directory and its tables, local or shared (PostgreSQL), and the storage helpers."""
