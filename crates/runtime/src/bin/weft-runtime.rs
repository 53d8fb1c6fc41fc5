//! A stand-alone entry to the runtime's shim (`weft-runtime shim ROOT ID BUNDLE`), used by
//! the integration tests as the shim executable; the product runs `weft shim`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.split_first() {
        Some((cmd, rest)) if cmd == "shim" => weft_runtime::shim_main(rest),
        _ => {
            eprintln!("usage: weft-runtime shim ROOT ID BUNDLE");
            2
        }
    };
    std::process::exit(code);
}
