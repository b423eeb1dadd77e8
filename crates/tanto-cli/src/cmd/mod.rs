pub mod health;
pub mod list;
pub mod rm;
pub mod show;
pub mod version;
