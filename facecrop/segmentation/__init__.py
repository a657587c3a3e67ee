"""The person segmenter: composite data (data.py), network (model.py), training, evaluation and export."""
