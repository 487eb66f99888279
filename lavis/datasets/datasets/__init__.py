"""Dataset classes: the annotation rows a builder reads, as samples for the model."""
