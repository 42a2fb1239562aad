"""Published results on the collapse benchmarks, as tabulated in BENCHMARKS.md (sources in
the method names). None where a paper did not report the figure."""

from __future__ import annotations

# method: (modes, high-quality %, reverse KL), per suite
PUBLISHED = {
    "ring": {
        "GAN (VEEGAN Table 1)": (1, 99.3, None),
        "Unrolled GAN, 5 steps (VEEGAN Table 1)": (7.6, 35.6, None),
        "VEEGAN (VEEGAN Table 1)": (8, 52.9, None),
        "WGAN-GP (GDPP Table 1)": (6.8, 59.6, None),
        "GDPP (GDPP Table 1)": (8.0, 71.7, None),
        "GAN (PacGAN Table 1)": (6.3, 98.2, 0.45),
        "PacGAN2 (PacGAN Table 1)": (7.9, 95.6, 0.07),
        "PacGAN4 (PacGAN Table 1)": (7.8, 95.9, 0.07),
        "goal of this project": (8.0, 98.0, 0.02),
    },
    "grid": {
        "GAN (VEEGAN Table 1)": (3.3, 0.5, None),
        "Unrolled GAN, 5 steps (VEEGAN Table 1)": (23.6, 16, None),
        "VEEGAN (VEEGAN Table 1)": (24.6, 40, None),
        "WGAN-GP (GDPP Table 1)": (24.2, 28.7, None),
        "GDPP (GDPP Table 1)": (24.8, 68.5, None),
        "GAN (PacGAN Table 1)": (17.3, 94.8, 0.70),
        "PacGAN2 (PacGAN Table 1)": (23.8, 91.3, 0.13),
        "PacGAN4 (PacGAN Table 1)": (24.8, 93.6, 0.04),
        "goal of this project": (25.0, 97.0, 0.02),
    },
    "stacked": {  # Stacked MNIST; ours is stacked bundled digits
        "DCGAN (VEEGAN Table 2)": (99, None, 3.40),
        "Unrolled GAN (VEEGAN Table 2)": (48.7, None, 4.32),
        "VEEGAN (VEEGAN Table 2)": (150, None, 2.95),
        "WGAN-GP (GDPP table)": (995, None, 0.148),
        "GDPP (GDPP table)": (1000, None, 0.135),
        "PacDCGAN2 (PacGAN Table 2)": (1000, None, 0.06),
        "goal of this project": (1000, None, 0.03),
    },
}
