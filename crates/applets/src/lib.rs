//! weft-applets
