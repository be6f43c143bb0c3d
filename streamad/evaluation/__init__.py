"""Offline evaluation: audio (events mixed into normal recordings), labelled series, ECG beats."""
