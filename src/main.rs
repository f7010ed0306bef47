//! The `izyrt` binary: parses the command line and hands over to `izyrt::cli`.

fn main() {
    std::process::exit(izyrt::cli::main());
}
