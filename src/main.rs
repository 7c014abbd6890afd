//! Maestral: the app (the Bevy app arrives with its own issue; for now a placeholder).

fn main() {
    println!("Maestral: the app window is not built yet.");
}
