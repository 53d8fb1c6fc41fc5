//! weft-model
