//! `vault`: the canister-vault command line.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match vault_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let json = cli.output.json;
    match vault_cli::execute(cli) {
        Ok(output) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&output.json).expect("JSON values serialize"));
            } else if !output.text.is_empty() {
                println!("{}", output.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
