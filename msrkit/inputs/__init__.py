"""What comes in: histories, catalogs and interactions read with errors naming file, line and field;
the one gate for local files; Parquet in and out; images and bounded downloads; an item's text.
"""
