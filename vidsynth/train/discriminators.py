"""MoCoGAN's two critics: one judges single frames (2D convolutions), the other whole
T-frame clips (3D convolutions). With categories, each also predicts the clip's action
(an auxiliary classifier, as MoCoGAN's categorical video discriminator does)."""

from __future__ import annotations

from torch import Tensor, nn

from vidsynth.model.generator import dcgan_init


class ImageDiscriminator(nn.Module):
    """(N, nc, S, S) frames -> (N,) real/fake logits and (N, n_categories) class logits."""

    def __init__(self, nc: int, ndf: int, image_size: int, n_categories: int = 0) -> None:
        super().__init__()
        final_kernel = image_size // 16  # 4 for 64x64, 6 for 96x96
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: ndf x S/2 x S/2
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf*2) x S/4 x S/4
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf*4) x S/8 x S/8
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf*8) x S/16 x S/16
        )
        self.head = nn.Conv2d(ndf * 8, 1 + n_categories, final_kernel, 1, 0, bias=True)
        self.apply(dcgan_init)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head(self.main(images)).flatten(1)  # (N, 1 + n_categories)
        return out[:, 0], out[:, 1:]


class VideoDiscriminator(nn.Module):
    """(B, T, nc, S, S) clips -> (B,) real/fake logits and (B, n_categories) class logits.

    Spatial size halves at every stage; time keeps its length in the first and last stages
    and halves in the middle two, so motion is seen at several time scales. Any T works;
    the head averages over what is left of time.
    """

    def __init__(self, nc: int, ndf: int, image_size: int, n_categories: int = 0) -> None:
        super().__init__()
        final_kernel = image_size // 16
        self.main = nn.Sequential(
            nn.Conv3d(nc, ndf, (3, 4, 4), (1, 2, 2), (1, 1, 1), bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: ndf x T x S/2 x S/2
            nn.Conv3d(ndf, ndf * 2, (4, 4, 4), (2, 2, 2), (1, 1, 1), bias=False),
            nn.BatchNorm3d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf*2) x T/2 x S/4 x S/4
            nn.Conv3d(ndf * 2, ndf * 4, (4, 4, 4), (2, 2, 2), (1, 1, 1), bias=False),
            nn.BatchNorm3d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf*4) x T/4 x S/8 x S/8
            nn.Conv3d(ndf * 4, ndf * 8, (3, 4, 4), (1, 2, 2), (1, 1, 1), bias=False),
            nn.BatchNorm3d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf*8) x T/4 x S/16 x S/16
        )
        self.head = nn.Conv3d(ndf * 8, 1 + n_categories, (1, final_kernel, final_kernel), 1, 0, bias=True)
        self.apply(dcgan_init)

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        x = video.transpose(1, 2)  # (B, nc, T, S, S): Conv3d wants channels before time
        out = self.head(self.main(x)).mean(dim=(2, 3, 4))  # (B, 1 + n_categories)
        return out[:, 0], out[:, 1:]
