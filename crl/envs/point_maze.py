"""The 2D point mazes of Contrastive RL (Eysenbach et al., 2022), vectorised in NumPy.

A faithful port of `point_env.py` in google-research/contrastive_rl: the agent is a
point (x, y) in [0, H] x [0, W] moving among walls on a grid of unit cells. Row i of a
layout is the first coordinate, column j the second; state (x, y) lies in cell
(floor(x), floor(y)).
"""

import numpy as np

from crl.envs.base import VecGoalEnv

# '#' = wall, '.' = free. Row i = first coordinate.
LAYOUTS = {
    "Small": """
        ....
        ....
        ....
        ....""",
    "Cross": """
        .......
        ...#...
        ...#...
        .#####.
        ...#...
        ...#...
        .......""",
    "FourRooms": """
        .....#.....
        .....#.....
        ...........
        .....#.....
        .....#.....
        #.####.....
        .....###.##
        .....#.....
        .....#.....
        ...........
        .....#.....""",
    "U": """
        ...
        .#.
        .#.
        .#.
        ##.
        .#.
        .#.
        .#.
        ...""",
    "Spiral11x11": """
        ###########
        #..........
        #.########.
        #.#......#.
        #.#.####.#.
        #.#.#..#.#.
        #.#.##.#.#.
        #.#....#.#.
        #.######.#.
        #........#.
        ##########.""",
    "Maze11x11": """
        .#...#...#.
        .#.#.#.#.#.
        .#.#.#.#.#.
        .#.#.#.#.#.
        ...#...#.#.
        ########.#.
        ###...#..#.
        ###.#.#.##.
        ....#...##.
        .#########.
        ...........""",
}
HORIZONS = {"Spiral11x11": 100, "Maze11x11": 100}  # all other layouts: 50


def parse_layout(layout: str) -> np.ndarray:
    """Returns the walls of a named layout as a bool array [H, W] (True = wall)."""
    rows = LAYOUTS[layout].split()
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


class PointMaze(VecGoalEnv):
    """`num_envs` point mazes with a shared layout; see the module docstring.

    Each step the action gets N(0, 0.01^2) noise and is clipped to [-1, 1]; the point
    then moves in 10 substeps of 0.1 * action, axis 0 then axis 1, skipping any axis
    move that would enter a wall cell or leave the grid. Start and goal are sampled
    independently and uniformly over the free cells. Success: ||state - goal|| < 2.

    `state` and `goal` ([N, 2] float64) are the true states; observations are their
    float32 casts, which may round onto a cell border (e.g. 10.99999999 -> 11.0).
    """

    substeps = 10
    success_radius = success_threshold = 2.0

    def __init__(self, layout: str, num_envs: int, seed: int = 0):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown point-maze layout {layout!r}; known: {', '.join(LAYOUTS)}")
        self.layout = layout
        self.name = f"point_{layout}"
        self.walls = parse_layout(layout)
        self.num_envs = num_envs
        self.obs_dim = self.goal_dim = self.act_dim = 2
        self.horizon = HORIZONS.get(layout, 50)
        self.action_noise = 0.01
        self.free_cells = np.argwhere(~self.walls)  # [num_free, 2] (i, j)
        self.state = self.goal = None  # [N, 2] float64, set by reset()
        self.seed(seed)

    def is_blocked(self, xy: np.ndarray) -> np.ndarray:
        """Returns [...] bool: whether each point xy [..., 2] is in a wall cell or off the grid."""
        shape = np.array(self.walls.shape)
        ij = np.floor(xy).astype(np.int64)
        inside = np.all((xy >= 0) & (ij < shape), axis=-1)
        ij = np.clip(ij, 0, shape - 1)
        return ~inside | self.walls[ij[..., 0], ij[..., 1]]

    def sample_free_states(self, n: int) -> np.ndarray:
        """Returns [n, 2] float64 points drawn uniformly over the free cells."""
        cells = self.free_cells[self.rng.integers(len(self.free_cells), size=n)]
        return cells + self.rng.random((n, 2))

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns obs [N, 2] float32 (start states) and goal [N, 2] float32."""
        self.goal = self.sample_free_states(self.num_envs)
        self.state = self.sample_free_states(self.num_envs)
        return self.state.astype(np.float32), self.goal.astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """Returns obs [N, 2] float32, success [N] bool, info {'distance': [N] float32}."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(self.num_envs, 2)
        action = action + self.rng.normal(0.0, self.action_noise, action.shape)
        action = np.clip(action, -1.0, 1.0)
        dt = 1.0 / self.substeps
        for _ in range(self.substeps):
            for axis in range(2):
                proposal = self.state.copy()
                proposal[:, axis] += dt * action[:, axis]
                free = ~self.is_blocked(proposal)
                self.state[free] = proposal[free]
        distance = np.linalg.norm(self.state - self.goal, axis=-1)
        success = distance < self.success_radius
        return self.state.astype(np.float32), success, {"distance": distance.astype(np.float32)}

    def obs_to_goal(self, obs: np.ndarray) -> np.ndarray:
        """Returns the goal achieved by obs [..., 2]: obs itself (a copy), [..., 2]."""
        return np.array(obs, copy=True)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        """Returns [...] bool: ||achieved_goal - desired_goal|| < 2, over [..., 2] inputs."""
        return np.linalg.norm(np.asarray(achieved_goal) - desired_goal, axis=-1) < self.success_radius

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns (low, high), each [2] float32: the grid [0, H] x [0, W]."""
        return np.zeros(2, np.float32), np.array(self.walls.shape, np.float32)

    goal_bounds = observation_bounds
