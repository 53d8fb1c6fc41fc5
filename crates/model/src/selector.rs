//! The selector language (Calico).
