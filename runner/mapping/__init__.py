"""Mappings: expressions and their function library, scoping filters, the object mapper."""
