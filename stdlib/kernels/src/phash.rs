//! Perceptual hashes (image_hasher's DCT median hash, 64 bits: the classic pHash): a second near-duplicate signal
//! beside embeddings, robust to re-encoding and resizing, and blind to content similarity, so it
//! keeps apart distinct photos that an embedding puts close together.

use image_hasher::{HashAlg, Hasher, HasherConfig};

thread_local! {
    static HASHER: Hasher<[u8; 8]> = HasherConfig::with_bytes_type::<[u8; 8]>().hash_size(8, 8).hash_alg(HashAlg::Median).preproc_dct().to_hasher();
}

/// The 64-bit pHash of an image. (The DCT *mean* hash is degenerate: the DC term dominates the
/// mean, so distinct photos hash alike; the `dedupe` bench shows it.)
pub fn phash(img: &image::DynamicImage) -> u64 {
    HASHER.with(|h| {
        let hash = h.hash_image(img);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(bytes)
    })
}

/// Bits that differ.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resized_copy_hashes_close_and_a_different_image_far() {
        // Random 8x8-pixel blocks: structure at every scale the hash looks at.
        let blocks = |seed: u64| {
            let mut rng = crate::SplitMix(seed);
            let cells: Vec<[u8; 3]> = (0..64).map(|_| [rng.next_u64() as u8, rng.next_u64() as u8, rng.next_u64() as u8]).collect();
            image::RgbImage::from_fn(64, 64, move |x, y| image::Rgb(cells[((y / 8) * 8 + x / 8) as usize]))
        };
        let img = blocks(1);
        let a = image::DynamicImage::ImageRgb8(img.clone());
        let small = image::DynamicImage::ImageRgb8(image::imageops::resize(&img, 32, 32, image::imageops::FilterType::Triangle));
        let other = image::DynamicImage::ImageRgb8(blocks(2));
        assert!(hamming(phash(&a), phash(&small)) <= 4, "{}", hamming(phash(&a), phash(&small)));
        assert!(hamming(phash(&a), phash(&other)) >= 16, "{}", hamming(phash(&a), phash(&other)));
    }
}
