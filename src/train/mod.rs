pub mod plots;
