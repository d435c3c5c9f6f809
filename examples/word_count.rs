//! Processing files in parallel: count the words of each file in a pool.
//!
//! ```python
//! def process_file(filename):
//!     """处理文件,统计单词数"""
//!     with open(filename, 'r', encoding='utf-8') as f:
//!         content = f.read()
//!     word_count = len(content.split())
//!     print(f"File {filename} has {word_count} words")
//!     return word_count
//!
//! files = ['file1.txt', 'file2.txt', 'file3.txt', 'file4.txt']
//! with multiprocessing.Pool(processes=4) as pool:
//!     results = pool.map(process_file, files)
//! print(f"Total word count: {sum(results)}")
//! ```
//!
//! The example writes its four files into a temporary directory first (file N holds
//! 10 × N words) and removes them at the end.
use multiproc::Pool;
use std::path::PathBuf;

fn process_file(filename: String) -> usize {
    let content = std::fs::read_to_string(&filename).unwrap_or_else(|e| panic!("{filename}: {e}"));
    let word_count = content.split_whitespace().count();
    let name = PathBuf::from(&filename);
    let short = name
        .file_name()
        .map_or(filename.clone(), |n| n.to_string_lossy().into_owned());
    println!("File {short} has {word_count} words");
    word_count
}

fn main() -> multiproc::Result<()> {
    let dir = std::env::temp_dir().join(format!("multiproc-word-count-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for n in 1..=4 {
        let path = dir.join(format!("file{n}.txt"));
        let text: Vec<String> = (0..10 * n).map(|i| format!("word{i}")).collect();
        std::fs::write(&path, text.join(if n % 2 == 0 { "\n" } else { " " }))?;
        files.push(path.to_string_lossy().into_owned());
    }

    let results = {
        let pool = Pool::new(4)?;
        pool.map(process_file, files)
    };
    std::fs::remove_dir_all(&dir)?;
    let results = results?;
    println!("Total word count: {}", results.iter().sum::<usize>());
    Ok(())
}
