"""Pinhole camera with OpenCV's distortion model, in numpy: floor point to pixel and back.

The conventions match OpenCV (cv2.projectPoints / cv2.undistortPoints) so a store's calibration
from OpenCV tools can be pasted into the store file unchanged.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from store_edge.layout.model import Camera, Extrinsics

FloatArray = NDArray[np.float64]


def rodrigues(rvec: tuple[float, float, float] | FloatArray) -> FloatArray:
    """Rotation vector to rotation matrix."""
    r = np.asarray(rvec, dtype=float)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.asarray(np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx), dtype=np.float64)


def rotation_to_rvec(rot: FloatArray) -> FloatArray:
    """Rotation matrix to rotation vector (inverse of `rodrigues`)."""
    cos = (np.trace(rot) - 1) / 2
    theta = float(np.arccos(np.clip(cos, -1.0, 1.0)))
    if theta < 1e-12:
        return np.zeros(3)
    if abs(theta - np.pi) < 1e-6:
        # axis from the symmetric part when sin(theta) ~ 0
        axis = np.sqrt(np.maximum((np.diag(rot) + 1) / 2, 0))
        i = int(np.argmax(axis))
        axis[:] = (rot[:, i] + np.eye(3)[:, i]) / 2 / axis[i]
        return np.asarray(axis / np.linalg.norm(axis) * theta, dtype=np.float64)
    w = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    return np.asarray(w / (2 * np.sin(theta)) * theta, dtype=np.float64)


def look_down_extrinsics(position: tuple[float, float, float], yaw_rad: float = 0.0) -> Extrinsics:
    """A ceiling camera at `position` looking straight down; image 'up' points along store +y rotated
    by `yaw_rad`. Returns OpenCV world-to-camera extrinsics."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    # Camera axes expressed in world coordinates (rows of R): x right, y down (in the image), z forward.
    x_cam = np.array([c, s, 0.0])
    y_cam = np.array([s, -c, 0.0])
    z_cam = np.array([0.0, 0.0, -1.0])
    rot = np.vstack([x_cam, y_cam, z_cam])
    tvec = -rot @ np.asarray(position, dtype=float)
    rvec = rotation_to_rvec(rot)
    return Extrinsics(
        rvec=(float(rvec[0]), float(rvec[1]), float(rvec[2])),
        tvec=(float(tvec[0]), float(tvec[1]), float(tvec[2])),
    )


class CameraModel:
    """Projection for one configured camera."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.rot = rodrigues(camera.extrinsics.rvec)
        self.tvec = np.asarray(camera.extrinsics.tvec, dtype=float)
        k = camera.intrinsics
        self.k = np.array([[k.fx, 0, k.cx], [0, k.fy, k.cy], [0, 0, 1.0]])
        self.dist = np.asarray(k.distortion, dtype=float)

    @property
    def position(self) -> FloatArray:
        """Camera centre in store coordinates."""
        return np.asarray(-self.rot.T @ self.tvec, dtype=np.float64)

    def _distort(self, xn: FloatArray) -> FloatArray:
        k1, k2, p1, p2, k3 = self.dist
        x, y = xn[:, 0], xn[:, 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2**3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def _undistort(self, xd: FloatArray, iterations: int = 20) -> FloatArray:
        """Invert `_distort` by fixed-point iteration, the way cv2.undistortPoints does."""
        if not np.any(self.dist):
            return xd
        k1, k2, p1, p2, k3 = self.dist
        xn = xd.copy()
        for _ in range(iterations):
            x, y = xn[:, 0], xn[:, 1]
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2**3
            dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            xn = np.stack([(xd[:, 0] - dx) / radial, (xd[:, 1] - dy) / radial], axis=1)
        return xn

    def world_to_pixel(self, points: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Project Nx3 store points; returns Nx2 pixels and a mask of points in front of the camera."""
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        cam = pts @ self.rot.T + self.tvec
        in_front = cam[:, 2] > 1e-6
        z = np.where(in_front, cam[:, 2], 1.0)
        xn = cam[:, :2] / z[:, None]
        xd = self._distort(xn)
        uv = xd * np.array([self.k[0, 0], self.k[1, 1]]) + np.array([self.k[0, 2], self.k[1, 2]])
        return uv, in_front

    def pixel_to_floor(self, pixels: FloatArray, z: float = 0.0) -> FloatArray:
        """Back-project Nx2 pixels onto the horizontal plane at height `z`; NaN where the ray misses it."""
        uv = np.atleast_2d(np.asarray(pixels, dtype=float))
        xd = (uv - np.array([self.k[0, 2], self.k[1, 2]])) / np.array([self.k[0, 0], self.k[1, 1]])
        xn = self._undistort(xd)
        rays_cam = np.hstack([xn, np.ones((len(xn), 1))])
        rays = rays_cam @ self.rot  # camera -> world direction (R^T applied to row vectors)
        origin = self.position
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (z - origin[2]) / rays[:, 2]
        hit = origin + rays * t[:, None]
        hit[~(t > 0)] = np.nan
        return np.asarray(hit[:, :2], dtype=np.float64)

    def sees(self, point: FloatArray) -> bool:
        uv, ok = self.world_to_pixel(np.asarray(point, dtype=float).reshape(1, 3))
        w, h = self.camera.resolution
        return bool(ok[0] and 0 <= uv[0, 0] < w and 0 <= uv[0, 1] < h)
