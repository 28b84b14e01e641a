"""How the simulated robot differs from the model the stack knows: a "reality" to test against.

The identifier replays probes in the nominal MuJoCo model. Recording them in that very model, with
exact efforts, measures the code against itself; a real cell differs. `Reality` lists the ways it
does, all off by default (`Reality()` is today's simulator, bit for bit):

- joint-effort channel: per-joint offsets and noise on the arm's reported efforts, what they
  include (`net_of_gravity`: the motor torque beyond the driver's gravity model, as this stack's
  drivers report; `with_gravity`: Franka's tau_J), and where the torque is sensed (`motor_side`:
  joint friction is in the reading; `link_side`: Franka's joint torque sensors sit after the
  gearbox, so friction is mostly not);
- the arm's and hand's inertials (mass, CoM, inertia per arm link; the hand's mass): the drivers'
  gravity compensation keeps using the nominal model, so the error shows in the efforts;
- joint friction (MuJoCo `frictionloss`, Coulomb, and `damping`, viscous), command delay;
- physics: timestep, contact softness (solref/solimp), friction cone;
- the object: CoM off its geometric centre, non-uniform inertia;
- the camera (sim_node's rendered camera and the bench's pose relay): pose noise, latency, drops.

`draw(rng)` samples one plausible cell from the ranges below, each with its source. The reality
lives in the simulator only: nothing in core.massid reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import mujoco
import numpy as np

N_ARM_LINKS = 7
ARM_LINKS = tuple(f"panda_link{i}" for i in range(1, N_ARM_LINKS + 1))
HAND_ROOT = "palm_link"
EFFORT_SEMANTICS = ("net_of_gravity", "with_gravity")
FRICTION_SIDES = ("motor_side", "link_side")
CONES = ("elliptic", "pyramidal")

# --- ranges of draw(), with their sources ------------------------------------------------------------
# Noise: of the order of the joint torque sensors' resolution in Franka's product data (~0.02 N*m,
# quoted from memory, not checked against the datasheet here), up to 2.5x that. Offsets: strain-gauge
# sensors drift with temperature between zeroings; we assume up to +-0.3 N*m per joint, the order of
# the residual torques left after identification in Gaz et al. 2019 (below). Both are assumptions.
EFFORT_OFFSET_RANGE = 0.3  # N*m, uniform +-
EFFORT_NOISE_RANGE = (0.01, 0.05)  # N*m, 1 sigma
# Gaz, Cognetti, Oliva, Robuffo Giordano, De Luca, "Dynamic Identification of the Franka Emika Panda
# Robot With Retrieval of Feasible Parameters Using Penalty-Based Optimization", IEEE RA-L 4(4), 2019:
# identified friction tau_f = phi1 / (1 + exp(-phi2 (qd + phi3))) - ..., saturating at phi1 per joint:
# 0.546, 0.872, 0.641, 1.279, 0.839, 0.303, 0.565 N*m. Drawn +-30 % around these (joints age and warm).
GAZ_COULOMB = (0.54615, 0.87224, 0.64068, 1.2794, 0.83904, 0.30301, 0.56489)  # N*m
COULOMB_SCALE_RANGE = (0.7, 1.3)
# Viscous part: their sigmoid's slope at speed (phi1 phi2 / 4 ~ 0.7-2 N*m*s/rad) acts only below
# ~0.1 rad/s; above it the friction is flat. A small linear term remains (assumed).
DAMPING_RANGE = (0.0, 0.2)  # N*m*s/rad
# Share of joint friction a link-side torque sensor still sees (bearings after the sensor): assumed.
LINK_FRICTION_SHARE_RANGE = (0.0, 0.15)
# Inertials: Gaz et al. report identified link masses and CoMs that differ from the CAD values by
# several % and millimetres; the held-out test used "a few %". Drawn: mass +-5 %, CoM +-5 mm
# per axis, inertia +-10 %; the Allegro hand (0.955 kg modelled) +-5 % (48 g).
LINK_MASS_RANGE = 0.05
LINK_COM_RANGE = 0.005  # m
LINK_INERTIA_RANGE = 0.10
HAND_MASS_RANGE = 0.05
# Command path: FCI runs at 1 kHz; network and controller add 1-3 ms (Franka FCI documentation,
# "communication"). Drawn 0-4 ms.
ACTUATOR_DELAY_RANGE = (0.0, 0.004)  # s
# Physics: a finer timestep and softer or stiffer contact than the identifier's model (MuJoCo's
# default solref (0.02, 1), solimp (0.9, 0.95, 0.001)); either friction cone.
TIMESTEPS = (0.001, 0.0005)  # s
SOLREF_TIMECONST_RANGE = (0.01, 0.03)  # s
SOLREF_DAMPRATIO_RANGE = (0.8, 1.2)
SOLIMP_DMIN_RANGE = (0.85, 0.95)
SOLIMP_DMAX_RANGE = (0.95, 0.99)
# Object: contents off centre by up to 20 % of the half extent per axis, principal moments +-30 %.
OBJECT_COM_SHARE = 0.2
OBJECT_INERTIA_RANGE = 0.3
# Camera pipeline (marker tracking on a RealSense-class camera at 30 Hz): 1-3 mm, 0.5-2 deg,
# 30-100 ms from capture to pose, 0-20 % of frames without a pose (occlusion, blur). Assumed.
CAMERA_POSITION_NOISE_RANGE = (0.001, 0.003)  # m
CAMERA_ROTATION_NOISE_RANGE = (0.5, 2.0)  # deg
CAMERA_LATENCY_RANGE = (0.03, 0.10)  # s
CAMERA_DROP_RANGE = (0.0, 0.2)


def _zeros(n: int = N_ARM_LINKS) -> tuple[float, ...]:
    return (0.0,) * n


def _ones(n: int = N_ARM_LINKS) -> tuple[float, ...]:
    return (1.0,) * n


@dataclass
class Reality:
    """One simulated cell. Arm arrays are per joint/link 1..7; scales are multiplicative."""

    effort_offset: tuple[float, ...] = field(default_factory=_zeros)  # N*m added to the reported arm efforts
    effort_noise: tuple[float, ...] = field(default_factory=_zeros)  # N*m, 1 sigma per sample
    effort_semantics: str = "net_of_gravity"
    friction_side: str = "motor_side"
    link_friction_share: float = 0.0  # of the joint friction a link-side sensor still sees
    link_mass_scale: tuple[float, ...] = field(default_factory=_ones)
    link_com_offset: tuple[tuple[float, float, float], ...] = field(default_factory=lambda: ((0.0, 0.0, 0.0),) * 7)
    link_inertia_scale: tuple[float, ...] = field(default_factory=_ones)
    hand_mass_scale: float = 1.0
    joint_frictionloss: tuple[float, ...] = field(default_factory=_zeros)  # N*m, Coulomb, added to the URDF's
    joint_damping: tuple[float, ...] = field(default_factory=_zeros)  # N*m*s/rad, viscous, added to the URDF's
    actuator_delay: float = 0.0  # s between a target and the motors
    timestep: float | None = None  # s; None: the scene's
    contact_solref: tuple[float, float] | None = None  # the object's contacts; None: MuJoCo's default
    contact_solimp: tuple[float, float, float] | None = None
    cone: str | None = None  # None: the scene's (elliptic)
    object_com_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # m, in the object frame
    object_inertia_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    camera_position_noise: float = 0.0  # m, 1 sigma per pose
    camera_rotation_noise_deg: float = 0.0
    camera_latency: float = 0.0  # s
    camera_drop_probability: float = 0.0
    seed: int = 0  # of the effort noise

    def validate(self) -> None:
        if self.effort_semantics not in EFFORT_SEMANTICS:
            raise ValueError(f"effort_semantics must be one of {EFFORT_SEMANTICS}, got {self.effort_semantics!r}")
        if self.friction_side not in FRICTION_SIDES:
            raise ValueError(f"friction_side must be one of {FRICTION_SIDES}, got {self.friction_side!r}")
        if self.cone is not None and self.cone not in CONES:
            raise ValueError(f"cone must be one of {CONES}, got {self.cone!r}")
        for name in ("effort_offset", "effort_noise", "link_mass_scale", "link_inertia_scale", "joint_frictionloss",
                     "joint_damping"):
            if len(getattr(self, name)) != N_ARM_LINKS:
                raise ValueError(f"{name} needs {N_ARM_LINKS} values")
        if len(self.link_com_offset) != N_ARM_LINKS or any(len(c) != 3 for c in self.link_com_offset):
            raise ValueError("link_com_offset needs 7 (x, y, z) offsets")
        positive = [*self.link_mass_scale, *self.link_inertia_scale, self.hand_mass_scale, *self.object_inertia_scale]
        if min(positive) <= 0:
            raise ValueError("mass and inertia scales must be positive")
        if min(*self.effort_noise, *self.joint_frictionloss, *self.joint_damping, self.actuator_delay,
               self.camera_latency, self.camera_position_noise, self.camera_rotation_noise_deg) < 0:
            raise ValueError("noise, friction, damping, delay and latency must be >= 0")
        if not 0.0 <= self.camera_drop_probability <= 1.0 or not 0.0 <= self.link_friction_share <= 1.0:
            raise ValueError("camera_drop_probability and link_friction_share must be in [0, 1]")
        if self.timestep is not None and not 0 < self.timestep <= 0.01:
            raise ValueError(f"timestep must be in (0, 0.01] s, got {self.timestep}")

    @property
    def is_exact(self) -> bool:
        return self == Reality(seed=self.seed)

    @property
    def inertials_differ(self) -> bool:
        """The arm or hand is not what the drivers' gravity model says."""
        return (self.link_mass_scale != _ones() or self.link_inertia_scale != _ones() or self.hand_mass_scale != 1.0
                or any(any(c) for c in self.link_com_offset))

    def to_dict(self) -> dict:
        return {k: (list(map(list, v)) if k == "link_com_offset" else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> Reality:
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown reality fields: {sorted(unknown)}")
        out = {k: (tuple(tuple(float(x) for x in c) for c in v) if k == "link_com_offset"
                   else tuple(float(x) for x in v) if isinstance(v, list) else v) for k, v in values.items()}
        reality = cls(**out)
        reality.validate()
        return reality

    def save(self, path: str | Path) -> Path:
        import yaml

        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Reality:
        import yaml

        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def draw(rng: np.random.Generator, friction_side: str = "link_side",
         effort_semantics: str = "net_of_gravity") -> Reality:
    """A plausible Panda + Allegro cell from the ranges above (Franka's link-side sensors by default)."""
    u = rng.uniform

    def around(share: float, n: int) -> tuple[float, ...]:
        return tuple(float(x) for x in 1.0 + u(-share, share, n))

    reality = Reality(
        effort_offset=tuple(float(x) for x in u(-EFFORT_OFFSET_RANGE, EFFORT_OFFSET_RANGE, N_ARM_LINKS)),
        effort_noise=tuple(float(x) for x in u(*EFFORT_NOISE_RANGE, N_ARM_LINKS)),
        effort_semantics=effort_semantics, friction_side=friction_side,
        link_friction_share=float(u(*LINK_FRICTION_SHARE_RANGE)),
        link_mass_scale=around(LINK_MASS_RANGE, N_ARM_LINKS),
        link_com_offset=tuple(tuple(float(x) for x in u(-LINK_COM_RANGE, LINK_COM_RANGE, 3))
                              for _ in range(N_ARM_LINKS)),
        link_inertia_scale=around(LINK_INERTIA_RANGE, N_ARM_LINKS),
        hand_mass_scale=around(HAND_MASS_RANGE, 1)[0],
        joint_frictionloss=tuple(float(c * s) for c, s in zip(GAZ_COULOMB, u(*COULOMB_SCALE_RANGE, N_ARM_LINKS),
                                                                strict=True)),
        joint_damping=tuple(float(x) for x in u(*DAMPING_RANGE, N_ARM_LINKS)),
        actuator_delay=float(u(*ACTUATOR_DELAY_RANGE)),
        timestep=float(rng.choice(TIMESTEPS)),
        contact_solref=(float(u(*SOLREF_TIMECONST_RANGE)), float(u(*SOLREF_DAMPRATIO_RANGE))),
        contact_solimp=(float(u(*SOLIMP_DMIN_RANGE)), float(u(*SOLIMP_DMAX_RANGE)), 0.001),
        cone=str(rng.choice(CONES)),
        object_com_offset=tuple(float(x) for x in u(-OBJECT_COM_SHARE, OBJECT_COM_SHARE, 3)),  # x half extent
        object_inertia_scale=around(OBJECT_INERTIA_RANGE, 3),
        camera_position_noise=float(u(*CAMERA_POSITION_NOISE_RANGE)),
        camera_rotation_noise_deg=float(u(*CAMERA_ROTATION_NOISE_RANGE)),
        camera_latency=float(u(*CAMERA_LATENCY_RANGE)),
        camera_drop_probability=float(u(*CAMERA_DROP_RANGE)),
        seed=int(rng.integers(2**31)))
    reality.validate()
    return reality


def reality_from(kind: str, seed: int = 0, path: str = "") -> Reality:
    """sim_node's parameters: `reality` exact | perturbed (drawn from `seed`), or a YAML file."""
    if path:
        return Reality.load(path)
    if kind == "exact":
        return Reality(seed=seed)
    if kind == "perturbed":
        return draw(np.random.default_rng(seed))
    raise ValueError(f"reality must be exact or perturbed, got {kind!r}")


# --- applying it to the scene's MjSpec ---------------------------------------------------------------
def _hand_bodies(spec: mujoco.MjSpec) -> list[mujoco.MjsBody]:
    root = spec.body(HAND_ROOT)
    out, stack = [], [root]
    while stack:
        body = stack.pop()
        out.append(body)
        stack.extend(body.bodies)
    return out


def apply_robot(spec: mujoco.MjSpec, reality: Reality) -> None:
    """Inertials and joint friction of the real arm and hand. Where the inertials differ, MuJoCo's
    gravcomp (which would compensate the true masses) is turned off: the scene applies the nominal
    model's gravity instead, as the drivers do (scene.NominalGravity)."""
    for i, name in enumerate(ARM_LINKS):
        body = spec.body(name)
        body.mass = body.mass * reality.link_mass_scale[i]
        body.ipos = np.asarray(body.ipos) + np.asarray(reality.link_com_offset[i])
        body.fullinertia = np.asarray(body.fullinertia) * reality.link_inertia_scale[i]
    for body in _hand_bodies(spec):
        body.mass = body.mass * reality.hand_mass_scale
        body.fullinertia = np.asarray(body.fullinertia) * reality.hand_mass_scale
    for i in range(N_ARM_LINKS):
        joint = spec.joint(f"panda_joint{i + 1}")
        joint.frictionloss = joint.frictionloss + reality.joint_frictionloss[i]
        joint.damping = np.asarray(joint.damping) + np.array([reality.joint_damping[i], 0.0, 0.0])
    if reality.inertials_differ or reality.effort_semantics == "with_gravity":
        for body in spec.bodies:
            if body.gravcomp:
                body.gravcomp = 0.0


def apply_physics(spec: mujoco.MjSpec, reality: Reality) -> None:
    if reality.timestep is not None:
        spec.option.timestep = reality.timestep
    if reality.cone is not None:
        spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL if reality.cone == "pyramidal" else \
            mujoco.mjtCone.mjCONE_ELLIPTIC


def apply_object(body: mujoco.MjsBody, geom: mujoco.MjsGeom, half_extents: np.ndarray, reality: Reality) -> None:
    """The object's contents off centre, its inertia non-uniform, and its contacts' softness (the
    object's geom has priority, so its solref/solimp govern its contacts)."""
    body.ipos = np.asarray(reality.object_com_offset) * half_extents
    moments = np.asarray(body.inertia) * np.asarray(reality.object_inertia_scale)
    body.inertia = _triangle(moments)
    if reality.contact_solref is not None:
        geom.solref = list(reality.contact_solref)
    if reality.contact_solimp is not None:
        geom.solimp = [*reality.contact_solimp, 0.5, 2.0]


def _triangle(moments: np.ndarray) -> np.ndarray:
    """Principal moments of a physical body (each at most the sum of the other two)."""
    m = moments.copy()
    for i in range(3):
        m[i] = min(m[i], 0.999 * (m.sum() - m[i]))
    return m
