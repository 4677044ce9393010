"""Stage `report`: tables, figures, report sections, the document, provenance and DVC metrics."""
