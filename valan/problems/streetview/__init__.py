"""Touchdown and map2seq navigation on the StreetLearn graph."""
