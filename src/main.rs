fn main() {
    println!("infab");
}
