//! weft-image
