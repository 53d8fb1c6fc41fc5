//! weft-dataplane
